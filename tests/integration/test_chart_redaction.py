"""The capture chart's redaction values: the policy reaches the sidecar through a ConfigMap and
the HMAC key through a Secret volume, at the paths its REWIND_REDACT_* variables name."""

from __future__ import annotations

from tests.integration.test_chart import container, env, example_pod, find, render
from sidecar.redact.policy import parse_policy


def test_policy_configmap_and_key_secret_are_mounted_where_the_env_points():
    """ci/redaction-values.yaml: the ConfigMap holds a policy the sidecar accepts; the env
    paths are inside the mounted ConfigMap and Secret volumes (read-only, key file 0400)."""
    docs = render("redaction")
    cm = find(docs, "ConfigMap", "-redaction")
    policy = parse_policy(cm["data"]["policy.yaml"], "configmap")
    assert policy.query == {"token": "mask"} and len(policy.drop_request) == 1
    spec = example_pod("redaction")["spec"]
    side = container(spec, "rewind-capture")
    e = env(side)
    mounts = {m["name"]: m for m in side["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert e["REWIND_REDACT_POLICY"] == mounts["rewind-redaction-policy"]["mountPath"] + "/policy.yaml"
    assert volumes["rewind-redaction-policy"]["configMap"]["name"] == cm["metadata"]["name"]
    assert e["REWIND_REDACT_KEY_FILE"] == mounts["rewind-redaction-key"]["mountPath"] + "/hmac-key"
    assert volumes["rewind-redaction-key"]["secret"] == {"secretName": "rewind-redact-key",
                                                         "defaultMode": 0o400}
    assert all(mounts[n]["readOnly"] for n in ("rewind-redaction-policy", "rewind-redaction-key"))


def test_no_redaction_values_means_built_in_defaults():
    """Without redaction values nothing extra is rendered: the sidecar uses its default masks."""
    docs = render("example")
    assert not [d for d in docs if d["kind"] == "ConfigMap"]
    side = container(example_pod()["spec"], "rewind-capture")
    assert not [k for k in env(side) if k.startswith("REWIND_REDACT")]
