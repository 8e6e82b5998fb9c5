"""`goreports run TEMPLATE.yaml --param ...`: the catalog's sales template (examples/) run as a
user runs it, to a real S3 endpoint (moto server); bad values refused naming the parameter."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.s3 import MotoServer, moto_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
GOREPORTS = Path(sys.executable).with_name("goreports")
TEMPLATE = ROOT / "examples" / "sales-template.yaml"

pytestmark = pytest.mark.integration


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GOREPORTS), "run", "--quiet", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_the_sales_template_runs_with_params_to_s3(moto_server: MotoServer,  # noqa: F811
                                                   tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "examples/data/make_sales_db.py")], check=True,
                   capture_output=True)
    bucket = moto_server.new_bucket("run")
    params = tmp_path / "params.yaml"
    params.write_text(f"bucket: {bucket}\nsince: 2024-06-01\ndispatchTo: email\n")
    done = run(str(TEMPLATE), "--params-file", str(params), "--param", "dispatchTo=s3",
               "--param", f"s3Endpoint={moto_server.endpoint}",
               "--credentials", str(moto_server.credentials_dir))
    assert done.returncode == 0, done.stderr
    keys = sorted(o["Key"] for o in moto_server.client().list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["sales/2024-06-01/sales-since-2024-06-01.xlsx", "sales/2024-06-01/summary.html"]


def test_bad_values_are_refused_naming_the_parameter(tmp_path: Path) -> None:
    done = run(str(TEMPLATE), "--param", "dispatchTo=ftp", "--param", "since=01/02/2024")
    assert done.returncode == 2
    assert "parameters.dispatchTo: must be one of [s3, email] (got 'ftp')" in done.stderr
    assert "parameters.since: expected a date as yyyy-mm-dd, got '01/02/2024'" in done.stderr

    params = tmp_path / "params.yaml"
    params.write_text("dispatchTo: 5\ncolour: red\n")
    done = run(str(TEMPLATE), "--params-file", str(params))
    assert done.returncode == 2
    assert "parameters.dispatchTo: must be one of [s3, email] (got 5)" in done.stderr
    assert "parameters.colour: the template declares no parameter 'colour'" in done.stderr

    done = run(str(TEMPLATE), "--param", "since")
    assert done.returncode == 2 and "--param 'since': expected name=value" in done.stderr
    done = run(str(ROOT / "examples" / "sales-from-template.yaml"))
    assert done.returncode == 2 and "run the template file itself" in done.stderr
