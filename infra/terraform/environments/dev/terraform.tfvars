# The digest of the flightdeck/triton image this deployment serves: `make images PUSH=1`
# (python containers/build_images.py --push) records it in containers/image-digests.json
# (images.triton). The all-zero value below is a placeholder that the variable's validation
# refuses, so `terraform plan` stops here with that message until the real digest is filled in.
triton_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

# Where RUNBOOK.md is published (the alerts' runbook links, PagerDuty and Slack messages): the
# placeholder below is refused by the variable's validation until the real URL is filled in.
runbook_base_url = "https://github.com/<org>/flightdeck/blob/main"
