"""Example ReportRequests shared by the schema and compiler tests.

`FULL` sets every field of every stage kind of the CRD (a test checks that it does), so the
schema tests prove the whole schema accepts a real document and the compiler tests prove no
field is dropped on the way to the task messages.
"""
from __future__ import annotations

from typing import Any

import pytest
import yaml

SEED = """
apiVersion: goreports.io/v1alpha1
kind: ReportRequest
metadata: {name: sales-report, namespace: team-a}
spec:
  steps:
    - name: collect
      sqlite:
        database: examples/data/sales.db
        queries:
          - {name: orders, sql: "SELECT * FROM orders WHERE region = :region",
             parameters: {region: EU}}
    - name: excel
      excel: {fileName: sales.xlsx}
    - name: deliver
      local: {path: out}
"""

LONG = """
apiVersion: goreports.io/v1alpha1
kind: ReportRequest
metadata: {name: long-report, namespace: team-b}
spec:
  deadlineSeconds: 600
  maxAttempts: 5
  parameters: {month: 2024-05}
  steps:
    - name: collect-eu
      sqlite:
        database: eu.db
        queries:
          - {name: orders_eu, sql: SELECT 1}
          - {name: customers, sql: SELECT 2}
    - name: collect-us
      mysql:
        credentialsId: sales-db
        queries:
          - {name: orders_us, sql: SELECT 3}
    - name: check
      jwt:
        tokenCredentialsId: caller-token
        keyCredentialsId: jwt-key
        algorithms: [HS256]
        rules: [{name: same-tenant, column: tenant_id, claim: tenant}]
        datasets: [orders_eu, orders_us]
    - name: combine
      aggregate:
        operations:
          - output: all_orders
            union: {inputs: [orders_eu, orders_us]}
          - output: by_customer
            join: {left: orders_eu, right: customers, keys: [customer_id]}
    - name: excel
      excel:
        fileName: sales.xlsx
        sheets:
          - {name: All, dataset: all_orders}
          - {dataset: customers}
    - name: to-s3
      s3: {bucket: reports}
    - name: to-mail
      email: {to: [a@x.io], from: reports@x.io, smtpHost: smtp.x.io, artifacts: [sales.xlsx]}
    - name: tell
      notify:
        webhook: {url: "https://hooks.x.io/done"}
"""

FULL = """
apiVersion: goreports.io/v1alpha1
kind: ReportRequest
metadata: {name: full-report, namespace: finance}
spec:
  description: Every field of every stage kind
  deadlineSeconds: 1800
  maxAttempts: 4
  parameters: {title: Sales, year: 2024, tags: [a, b]}
  steps:
    - name: collect-lite
      pattern: sqlite-big
      sqlite:
        database: examples/data/sales.db
        queries:
          - name: orders
            sql: SELECT * FROM orders WHERE region = :region
            parameters: {region: EU, min: 10, exact: true, ratio: 0.5, none: null}
    - name: collect-my
      mysql:
        instance: sales-db
        host: mariadb.db.svc
        port: 3307
        dbName: connect
        credentialsId: sales-db
        useCache: true
        cacheTtlSeconds: 600
        connectTimeoutSeconds: 5
        readTimeoutSeconds: 120
        queries:
          - name: payments
            sql: SELECT * FROM payments WHERE created >= %(since)s
            parameters: {since: "2024-01-01"}
            usePagination: true
            paginationKey: id
            pageSize: 5000
    - name: collect-api
      http:
        dataset: customers
        url: https://api.example.com/customers
        method: POST
        headers: {Accept: application/json}
        query: {status: active}
        credentialsId: crm-api
        auth: {type: header, header: X-API-Key}
        recordsPath: data.items
        columns: [id, name, tenant_id]
        pagination: {type: nextLink, nextLinkPath: links.next, cursorPath: meta.cursor,
                     cursorParam: cursor, pageParam: page, startPage: 2, maxPages: 50}
        timeoutSeconds: 20
        maxRetries: 2
        maxResponseBytes: 2048
        allowHosts: [api.internal]
    - name: check
      jwt:
        tokenCredentialsId: caller-token
        token: eyJhbGciOiJIUzI1NiJ9.e30.x
        keyCredentialsId: jwt-key
        algorithms: [HS256, RS256]
        audience: goreports
        issuer: https://issuer.example.com
        mode: deny
        rules: [{name: same-tenant, column: tenant_id, claim: tenant}]
        datasets: [customers]
    - name: combine
      aggregate:
        operations:
          - output: all_rows
            union: {inputs: [orders, payments]}
          - output: orders_with_customer
            join: {left: orders, right: customers, keys: [customer_id], type: left}
          - output: by_region
            groupBy:
              input: orders
              keys: [region]
              aggregates:
                - {column: amount, function: sum, as: total}
                - {function: count, as: n}
    - name: excel
      excel:
        fileName: sales.xlsx
        freezeHeader: true
        autoFilter: true
        sheets:
          - name: Orders
            dataset: orders
            columns: [{name: amount, numberFormat: "#,##0.00", width: 12, header: Amount}]
    - name: html
      mustache:
        fileName: summary.html
        templateFile: summary.mustache
        templateDir: examples/templates
        datasets: [by_region]
        contentType: text/html
        unescapedFields: [notes]
        maxRows: 100
    - name: inline
      mustache:
        fileName: inline.txt
        template: "{{report.name}}"
    - name: csv
      csv: {fileName: orders.csv, dataset: orders_with_customer, delimiter: ";", header: false}
    - name: keep
      local: {path: out, artifacts: [sales.xlsx]}
    - name: to-s3
      s3: {bucket: reports, prefix: sales/, endpointUrl: "http://minio:9000", region: eu-west-1,
           credentialsId: s3, serverSideEncryption: "aws:kms", kmsKeyId: key-1,
           metadata: {team: finance}, presignSeconds: 3600, multipartThresholdBytes: 16777216,
           artifacts: [sales.xlsx, orders.csv]}
    - name: to-mail
      email: {to: [a@x.io], cc: [b@x.io], from: reports@x.io, subject: "Report {{report.name}}",
              body: Attached., smtpHost: smtp.x.io, smtpPort: 587, security: starttls,
              credentialsId: smtp, attachLimitBytes: 1048576, linkBaseUrl: "https://files.x.io/",
              timeoutSeconds: 15, artifacts: [summary.html]}
    - name: to-hook
      webhook: {url: "https://hooks.x.io/r", credentialsId: hook, sendFile: true,
                timeoutSeconds: 10, maxRetries: 1, allowHosts: [hooks.x.io],
                headers: {X-Team: finance}, artifacts: [orders.csv]}
    - name: to-drive
      drive: {folderId: abc_DEF-1, credentialsId: drive-sa,
              tokenUri: "https://oauth2.googleapis.com/token",
              uploadUrl: "https://www.googleapis.com/upload/drive/v3/files",
              artifacts: [sales.xlsx]}
    - name: audit
      custom: {pattern: audit-log, channel: extras, task: {level: 2, targets: [x]},
               datasets: [audit_trail], reads: [by_region], files: [audit.txt]}
    - name: tell
      notify:
        when: [failure]
        email: {to: [ops@x.io], from: reports@x.io, smtpHost: smtp.x.io, artifacts: [inline.txt]}
        webhook: {url: "https://hooks.x.io/n"}
"""


def load(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


@pytest.fixture
def example_texts() -> dict[str, str]:
    """The examples as YAML text (for tests that edit the text itself)."""
    return {"seed": SEED, "long": LONG, "full": FULL}


@pytest.fixture
def seed_doc() -> dict[str, Any]:
    return load(SEED)


@pytest.fixture
def long_doc() -> dict[str, Any]:
    return load(LONG)


@pytest.fixture
def full_doc() -> dict[str, Any]:
    return load(FULL)
