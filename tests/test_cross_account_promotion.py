"""Cross-account promotion (issue 15 E): the source stack declares the grants, switched on by
`mlplatform:storagePromotionReaderAccounts`; the promoting stack then copies from the other account and serves
only what it owns."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.settings import SettingsError, load_settings
from tests.conftest import plan_with
from tools.example_outputs import dev_outputs
from tools.plan import run_program, stack_config
from tools.validate import validate_plan

PROD_ACCOUNT = "444455556666"
DEV_ACCOUNT = "111122223333"  # the mock runtime's account: dev's own


def _statements(policy: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(policy)["Statement"]}


@pytest.fixture(scope="module")
def granting_dev() -> Any:
    return plan_with("dev", {"mlplatform:storagePromotionReaderAccounts": json.dumps([PROD_ACCOUNT])})


def test_source_stack_grants_the_promoting_account_read_pull_and_decrypt_only(granting_dev: Any) -> None:
    key = granting_dev.named("mlplatform-dev-key")["inputs"]
    statements = _statements(key["policy"])
    assert statements["EnableIAMUserPermissions"]["Principal"] == {"AWS": f"arn:aws:iam::{DEV_ACCOUNT}:root"}
    decrypt = statements["PromotingAccountsDecrypt"]
    assert decrypt["Principal"] == {"AWS": [f"arn:aws:iam::{PROD_ACCOUNT}:root"]}
    assert decrypt["Action"] == ["kms:Decrypt", "kms:DescribeKey"]
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == [
        "s3.us-east-1.amazonaws.com",
        "ecr.us-east-1.amazonaws.com",
    ]

    policies = {
        r["inputs"]["bucket"]: _statements(r["inputs"]["policy"])
        for r in granting_dev.of_type("aws:s3/bucketPolicy:BucketPolicy")
    }
    models = policies[granting_dev.outputs["modelBucket"]]
    assert models["PromotingAccountsReadModels"]["Resource"].endswith(
        ":::" + granting_dev.outputs["modelBucket"] + "/training/*"
    )
    for bucket in (granting_dev.outputs["dataBucket"], granting_dev.outputs["captureBucket"]):
        assert set(policies[bucket]) == {"DenyInsecureTransport"}

    (repository_policy,) = granting_dev.of_type("aws:ecr/repositoryPolicy:RepositoryPolicy")
    assert repository_policy["inputs"]["repository"].startswith("mlplatform-dev-serving-repo")  # the serving repository
    pull = _statements(repository_policy["inputs"]["policy"])["PromotingAccountsPull"]
    assert pull["Principal"] == {"AWS": [f"arn:aws:iam::{PROD_ACCOUNT}:root"]}
    assert validate_plan(granting_dev).ok


def test_without_promoting_accounts_nothing_is_granted(dev_plan: Any) -> None:
    assert "policy" not in dev_plan.named("mlplatform-dev-key")["inputs"]
    assert dev_plan.of_type("aws:ecr/repositoryPolicy:RepositoryPolicy") == []


def test_a_malformed_account_is_refused_naming_the_key() -> None:
    config = {**stack_config("dev"), "mlplatform:storagePromotionReaderAccounts": json.dumps(["4444"])}
    with pytest.raises(SettingsError, match="mlplatform:storagePromotionReaderAccounts"):
        load_settings(config, stack="dev")


def test_prod_in_another_account_copies_from_dev_and_its_endpoint_reads_only_prods_own_artifacts() -> None:
    """Dev lives in 111122223333, prod (this plan) reads dev's outputs; the copies' sources are dev's, and the
    endpoint role reads and pulls nothing of dev's (only prod's bucket and repository)."""
    plan = run_program("prod", stack_config("prod"), stack_outputs={"organization/mlplatform/dev": dev_outputs()})
    (copy,) = plan.of_type("pulumi-python:dynamic:Resource")
    assert copy["inputs"]["source_image"] == dev_outputs()["servingImage"]
    role_policy = next(
        r for r in plan.of_type("aws:iam/rolePolicy:RolePolicy") if r["parent"].endswith("mlplatform-prod-endpoint")
    )
    statements = _statements(role_policy["inputs"]["policy"])
    assert statements["PullServingImage"]["Resource"].endswith(":repository/mlplatform-prod-serving-promoted")
    assert statements["ReadModelFiles"]["Resource"].startswith(f"arn:aws:s3:::{plan.outputs['modelBucket']}/promoted/")
