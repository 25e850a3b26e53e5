# Three workers each run a long module; once all three run, breaker
# fails and on_failure = "stop" cancels the run on every member.
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
module "shell" "breaker" {
  pin_to_master = true
  script        = "i=0; while [ $(ls '${var.dir}' | wc -l) -lt 3 ]; do sleep 0.05; i=$((i+1)); [ $i -lt 2400 ] || exit 9; done; echo breaking; exit 3"
}
# Queued behind long_alpha on alpha's single slot: it never starts.
module "shell" "queued_alpha" {
  requires = ["alpha"]
  priority = -1
  command  = ["true"]
}
