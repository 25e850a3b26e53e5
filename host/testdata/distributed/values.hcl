# A module only the worker runs prints a variable and a local derived
# from it: whatever --var the worker got, it must run with the master's.
variable "greeting" {
  type = string
}

locals {
  shout = upper(var.greeting)
}

module "shell" "echo" {
  requires = ["alpha"]
  script   = "echo ${var.greeting} ${local.shout}"
}
