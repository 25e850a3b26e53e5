# Three workers each run a long module until the test kills the master:
# nothing in the pipeline ends the run first.
variable "dir" {
  type = string
}

locals {
  long = "touch \"${var.dir}/$M\"; sleep 600"
}

module "shell" "long_alpha" {
  requires = ["alpha"]
  script   = local.long
  env      = { M = "alpha" }
}
module "shell" "long_beta" {
  requires = ["beta"]
  script   = local.long
  env      = { M = "beta" }
}
module "shell" "long_gamma" {
  requires = ["gamma"]
  script   = local.long
  env      = { M = "gamma" }
}
