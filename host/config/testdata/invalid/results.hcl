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

# An instance named by the module's own matrix value: the index is an
# expression, and the attribute after it is checked all the same.
module "shell" "indexed_misspelt" {
  matrix  = ["linux", "arm"]
  command = ["echo", module.build[matrix.target].stauts]
}

module "shell" "indexed_fine" {
  matrix  = ["linux", "arm"]
  command = ["echo", module.build[matrix.target].value.stdout, module.build[lower(matrix.target)].status]
}
