# Modules on different members share a not_in_parallel key: their start
# and end events in one log file must never interleave.
variable "log" {
  type = string
}

locals {
  step = "echo \"start $M\" >> '${var.log}'; sleep 0.2; echo \"end $M\" >> '${var.log}'"
}

module "shell" "one" {
  requires        = ["alpha"]
  not_in_parallel = ["db"]
  script          = local.step
  env             = { M = "one" }
}
module "shell" "two" {
  requires        = ["beta"]
  not_in_parallel = ["db"]
  script          = local.step
  env             = { M = "two" }
}
module "shell" "three" {
  requires        = ["gamma"]
  not_in_parallel = ["db"]
  script          = local.step
  env             = { M = "three" }
}
module "shell" "four" {
  not_in_parallel = ["db"]
  pin_to_master   = true
  script          = local.step
  env             = { M = "four" }
}
