# Four modules that can only finish once all four run at once: with one
# slot per member, every member of a four-instance fleet must run one.
variable "dir" {
  type = string
}

locals {
  barrier = "touch \"${var.dir}/$M\"; i=0; while [ $(ls '${var.dir}' | wc -l) -lt 4 ]; do sleep 0.05; i=$((i+1)); [ $i -lt 2400 ] || exit 9; done; echo ran"
}

module "shell" "a" {
  script = local.barrier
  env    = { M = "a" }
}
module "shell" "b" {
  script = local.barrier
  env    = { M = "b" }
}
module "shell" "c" {
  script = local.barrier
  env    = { M = "c" }
}
module "shell" "d" {
  script = local.barrier
  env    = { M = "d" }
}
