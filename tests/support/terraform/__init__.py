"""Helpers of tests/ops/test_terraform.py: terraform in throw-away copies, and a moto server."""

from tests.support.terraform.moto import ACCOUNT_ID, REGION, MotoServer, MotoUnavailable
from tests.support.terraform.tools import (
    OTEL_DIR,
    REPO,
    TERRAFORM_DIR,
    Result,
    Terraform,
    TerraformError,
    TerraformUnavailable,
    copy_configurations,
    find_plugin_dir,
    find_terraform,
)

__all__ = [
    "ACCOUNT_ID",
    "OTEL_DIR",
    "REGION",
    "REPO",
    "TERRAFORM_DIR",
    "MotoServer",
    "MotoUnavailable",
    "Result",
    "Terraform",
    "TerraformError",
    "TerraformUnavailable",
    "copy_configurations",
    "find_plugin_dir",
    "find_terraform",
]
