#!/bin/bash
# 58-terraform.sh again with Terraform in containers: terraform.image set to
# an image holding the host's terraform (imported into a private Podman), the
# state directory given through terraform.mounts. Every scenario must come
# out the same: plans on PRs, applies on merge, drift healed and reported,
# broken modules failing with Terraform's message.
SW_TF_CONTAINER=1 exec bash "$SRC/tests/e2e/58-terraform.sh"
