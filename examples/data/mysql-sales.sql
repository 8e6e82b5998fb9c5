-- Sample schema and rows for examples/mysql-report.yaml (MySQL 8 or MariaDB 10.5+).
--
--   mariadb -e 'CREATE DATABASE sales CHARACTER SET utf8mb4'
--   mariadb sales < examples/data/mysql-sales.sql
--
-- The report should read with a user that may only SELECT (the collector's read-only
-- transaction refuses writes anyway; least privilege is the second lock):
--
--   CREATE USER 'reports'@'%' IDENTIFIED BY 'choose-a-password';
--   GRANT SELECT ON sales.* TO 'reports'@'%';

DROP TABLE IF EXISTS orders;
DROP TABLE IF EXISTS products;
DROP TABLE IF EXISTS customers;
DROP TABLE IF EXISTS regions;

CREATE TABLE regions (
  id   SMALLINT UNSIGNED PRIMARY KEY,
  name VARCHAR(40) NOT NULL
);

CREATE TABLE customers (
  id        INT UNSIGNED PRIMARY KEY,
  name      VARCHAR(80) NOT NULL,
  email     VARCHAR(120),
  region_id SMALLINT UNSIGNED NOT NULL,
  since     DATE NOT NULL,
  FOREIGN KEY (region_id) REFERENCES regions (id)
);

CREATE TABLE products (
  id         INT UNSIGNED PRIMARY KEY,
  sku        CHAR(8) NOT NULL UNIQUE,
  name       VARCHAR(80) NOT NULL,
  list_price DECIMAL(10, 2) NOT NULL
);

CREATE TABLE orders (
  id          BIGINT UNSIGNED PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL,
  product_id  INT UNSIGNED NOT NULL,
  order_date  DATE NOT NULL,
  quantity    SMALLINT UNSIGNED NOT NULL,
  unit_price  DECIMAL(10, 2) NOT NULL,
  discount    DECIMAL(4, 3) NOT NULL DEFAULT 0,
  amount      DECIMAL(12, 2) AS (ROUND(quantity * unit_price * (1 - discount), 2)) STORED,
  status      ENUM('paid', 'open', 'refunded') NOT NULL,
  created_at  DATETIME NOT NULL,
  shipped_at  DATETIME NULL,
  attributes  JSON NULL,
  KEY (order_date),
  FOREIGN KEY (customer_id) REFERENCES customers (id),
  FOREIGN KEY (product_id) REFERENCES products (id)
);

INSERT INTO regions (id, name) VALUES
  (1, 'North'), (2, 'South'), (3, 'East'), (4, 'West');

INSERT INTO customers (id, name, email, region_id, since) VALUES
  (1, 'Acme Tools GmbH',        'buying@acme.example',      1, '2021-03-01'),
  (2, 'Borealis Foods',         'orders@borealis.example',  1, '2022-07-15'),
  (3, 'Cobalt & Sons',          NULL,                       2, '2020-11-30'),
  (4, 'Delta Outfitters',       'hello@delta.example',      2, '2023-01-09'),
  (5, 'Evergreen Garden Co.',   'shop@evergreen.example',   3, '2019-05-21'),
  (6, 'Fjord Logistics AS',     'ap@fjord.example',         4, '2022-02-02'),
  (7, '=HYPERLINK("x") Ltd',    'odd@name.example',         4, '2024-01-05');

INSERT INTO products (id, sku, name, list_price) VALUES
  (1, 'TL-00001', 'Cordless drill 18V',     129.90),
  (2, 'TL-00002', 'Socket set, 94 pieces',   74.50),
  (3, 'GD-00010', 'Garden hose 25 m',        39.99),
  (4, 'GD-00011', 'Pruning shears',          18.25),
  (5, 'OF-00100', 'Standing desk',          449.00);

INSERT INTO orders (id, customer_id, product_id, order_date, quantity, unit_price, discount,
                    status, created_at, shipped_at, attributes) VALUES
  (1001, 1, 1, '2024-01-03', 4, 129.90, 0.050, 'paid',     '2024-01-03 09:14:02', '2024-01-05 16:00:00', '{"channel": "web", "coupon": "NEWYEAR"}'),
  (1002, 2, 3, '2024-01-04', 10, 39.99, 0.000, 'paid',     '2024-01-04 11:40:55', '2024-01-06 10:30:00', '{"channel": "phone"}'),
  (1003, 3, 2, '2024-01-09', 2, 74.50, 0.000, 'open',      '2024-01-09 17:02:13', NULL,                  NULL),
  (1004, 4, 5, '2024-01-12', 1, 449.00, 0.100, 'paid',     '2024-01-12 08:00:00', '2024-01-19 12:00:00', '{"channel": "web", "gift": true}'),
  (1005, 5, 4, '2024-01-15', 25, 18.25, 0.150, 'paid',     '2024-01-15 13:25:41', '2024-01-16 09:45:00', '{"channel": "field", "rep": "K. Berg"}'),
  (1006, 6, 1, '2024-01-20', 6, 129.90, 0.050, 'refunded', '2024-01-20 15:33:09', '2024-01-22 11:00:00', '{"channel": "web"}'),
  (1007, 1, 2, '2024-02-01', 3, 74.50, 0.000, 'paid',      '2024-02-01 10:10:10', '2024-02-02 14:20:00', NULL),
  (1008, 7, 3, '2024-02-03', 1, 39.99, 0.000, 'paid',      '2024-02-03 19:48:00', '2024-02-05 08:30:00', '{"channel": "web"}'),
  (1009, 2, 4, '2024-02-07', 40, 18.25, 0.200, 'paid',     '2024-02-07 07:55:30', '2024-02-08 13:00:00', '{"channel": "phone", "coupon": "BULK"}'),
  (1010, 5, 5, '2024-02-11', 2, 449.00, 0.050, 'open',     '2024-02-11 12:12:12', NULL,                  '{"channel": "web"}'),
  (1011, 3, 1, '2024-02-18', 1, 129.90, 0.000, 'paid',     '2024-02-18 16:45:00', '2024-02-20 10:00:00', NULL),
  (1012, 4, 3, '2024-02-25', 8, 39.99, 0.100, 'paid',      '2024-02-25 09:30:00', '2024-02-27 15:15:00', '{"channel": "field"}'),
  (1013, 6, 2, '2024-03-02', 5, 74.50, 0.050, 'paid',      '2024-03-02 14:00:00', '2024-03-04 09:00:00', '{"channel": "web"}'),
  (1014, 1, 5, '2024-03-08', 2, 449.00, 0.000, 'paid',     '2024-03-08 10:20:30', '2024-03-15 16:40:00', '{"channel": "web", "gift": false}'),
  (1015, 2, 1, '2024-03-14', 3, 129.90, 0.000, 'refunded', '2024-03-14 18:05:00', '2024-03-16 12:00:00', NULL),
  (1016, 7, 4, '2024-03-21', 12, 18.25, 0.000, 'paid',     '2024-03-21 11:11:11', '2024-03-22 10:10:00', '{"channel": "phone"}');
