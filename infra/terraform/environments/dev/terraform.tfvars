# The digest of the flightdeck/triton image this deployment serves: `make images PUSH=1`
# (python containers/build_images.py --push) records it in containers/image-digests.json
# (images.triton). The all-zero value below is a placeholder that the variable's validation
# refuses, so `terraform plan` stops here with that message until the real digest is filled in.
triton_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
