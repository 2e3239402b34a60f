environment        = "dev"
region             = "us-east-1"
owner              = "ml-platform"
vpc_cidr           = "10.40.0.0/16"
availability_zones = ["us-east-1a", "us-east-1b"]
single_nat_gateway = true

system_node_group = {
  instance_types = ["m6i.xlarge"]
  min_size       = 1
  max_size       = 3
  desired_size   = 2
}

# Scales to zero when nothing needs a GPU.
gpu_node_group = {
  instance_types = ["g5.xlarge"]
  min_size       = 0
  max_size       = 2
  desired_size   = 1
}

redis_node_type        = "cache.t4g.small"
redis_replicas         = 1 # failover needs one replica, even in dev
db_instance_class      = "db.t4g.small"
db_multi_az            = false
db_deletion_protection = false
force_destroy_buckets  = true

# Replace with the digest `make images --push` records in containers/image-digests.json.
triton_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
