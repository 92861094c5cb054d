"""Runs inside the policy pack's own virtualenv: starts the pack as the Pulumi engine would, asks it for its
policies and has it analyze the resources of a plan file. Prints JSON; used by tests/test_policy_pack.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

LEVELS = {0: "advisory", 1: "mandatory", 2: "disabled", 3: "remediate"}


def urn(stack: str, r: dict) -> str:
    return f"urn:pulumi:{stack}::mlplatform::{r['type']}::{r['name']}"


def main() -> int:
    pack_dir, plan_file = Path(sys.argv[1]), Path(sys.argv[2])
    plan = json.loads(plan_file.read_text())
    proc = subprocess.Popen([sys.executable, str(pack_dir / "__main__.py")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().strip())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = analyzer_pb2_grpc.AnalyzerStub(channel)
        info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
        refs = {f"{r['type']}::{r['name']}": urn(plan["stack"], r) for r in plan["resources"]}
        resources = []
        resource_diagnostics = []
        for r in plan["resources"]:
            # As the engine does (pulumi/pulumi pkg/resource/deploy/step_generator.go): resource policies
            # (Analyze) get a resource's INPUTS; stack policies (AnalyzeStack) get its OUTPUTS. A component's
            # outputs are what it registered (the plan's "outputs", nothing if it registered none); a custom
            # resource's outputs hold its inputs plus what the provider computed, which a plan does not know.
            inputs = struct_pb2.Struct()
            inputs.update(r["inputs"])
            single = stub.Analyze(
                analyzer_pb2.AnalyzeRequest(
                    type=r["type"], name=r["name"], urn=refs[f"{r['type']}::{r['name']}"], properties=inputs
                ),
                timeout=60,
            )
            resource_diagnostics += [
                {"policy": d.policyName, "level": LEVELS.get(d.enforcementLevel), "message": d.message, "urn": d.urn}
                for d in single.diagnostics
            ]
            props = struct_pb2.Struct()
            props.update(r["inputs"] if r.get("custom", True) else r.get("outputs", {}))
            resources.append(
                analyzer_pb2.AnalyzerResource(
                    type=r["type"],
                    name=r["name"],
                    urn=refs[f"{r['type']}::{r['name']}"],
                    properties=props,
                    dependencies=[refs[d] for d in r.get("options", {}).get("dependsOn", []) if d in refs],
                )
            )
        response = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources), timeout=60)
        print(
            json.dumps(
                {
                    "name": info.name,
                    "policies": {
                        p.name: LEVELS.get(p.enforcementLevel, str(p.enforcementLevel)) for p in info.policies
                    },
                    "diagnostics": [
                        {
                            "policy": d.policyName,
                            "level": LEVELS.get(d.enforcementLevel),
                            "message": d.message,
                            "urn": d.urn,
                        }
                        for d in response.diagnostics
                    ],
                    "not_applicable": [n.policy_name for n in response.not_applicable],
                    "resource_diagnostics": resource_diagnostics,
                }
            )
        )
        return 0
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
