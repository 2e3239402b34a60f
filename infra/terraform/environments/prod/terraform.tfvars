environment        = "prod"
region             = "us-east-1"
owner              = "ml-platform"
vpc_cidr           = "10.50.0.0/16"
availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
single_nat_gateway = false

system_node_group = {
  instance_types = ["m6i.2xlarge"]
  min_size       = 3
  max_size       = 9
  desired_size   = 3
}

gpu_node_group = {
  instance_types = ["g5.2xlarge"]
  min_size       = 2
  max_size       = 6
  desired_size   = 2
}

redis_node_type        = "cache.r7g.large"
redis_replicas         = 2
db_instance_class      = "db.r6g.large"
db_multi_az            = true
db_deletion_protection = true
force_destroy_buckets  = false

# Replace with the digest `make images --push` records in containers/image-digests.json.
triton_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
