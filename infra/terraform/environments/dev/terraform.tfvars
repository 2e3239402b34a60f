# Replace with the digest `make images PUSH=1` (python containers/build_images.py --push)
# records in containers/image-digests.json.
triton_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
