#!/usr/bin/env python3
"""Runs the SAM translator over template.yaml, as `sam deploy` would, and fails on what it
refuses. cfn-lint's own transform is lenient (it resolves conditions where SAM takes
literals, e.g. a route's authorizer), so a template it passes can still fail to deploy.
The image functions get a placeholder ImageUri, which `sam build` sets for real.

    scripts/sam_check.py template.yaml
"""
import logging
import os
import sys

from cfnlint.decode import decode
from samtranslator.public.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    def get_managed_policy_map(self):
        return {}


def main(path):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # The translator logs its feature toggles' defaults; only its refusals matter here.
    logging.disable(logging.WARNING)
    template, matches = decode(path)
    if matches:
        print("\n".join(str(m) for m in matches), file=sys.stderr)
        return 1
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and properties.get("PackageType") == "Image":
            properties.setdefault("ImageUri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/docusnap:check")
    try:
        transform(template, {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"SAM refuses {path}: {cause}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
