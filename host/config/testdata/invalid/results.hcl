# A module's result has a fixed set of attributes; reading another fails
# at validate, not when the module runs.
module "shell" "g" {
  command = ["true"]
}

module "shell" "build" {
  matrix  = ["linux", "arm"]
  command = ["true"]
}

module "shell" "misspelt" {
  command = ["echo", module.g.valeu]
}

module "shell" "whole_matrix" {
  command = ["echo", module.build.value.stdout]
}

module "shell" "instance_misspelt" {
  command = ["echo", module.build["linux"].statu]
}

# These are fine.
module "shell" "fine" {
  command = concat(
    ["echo", module.g.value.stdout, module.g.ignored_failure ? "i" : "-"],
    [module.build["linux"].value.stdout, module.build.arm.status],
    [for k, r in module.build : r.status],
  )
}
