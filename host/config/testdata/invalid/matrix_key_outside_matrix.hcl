# depends_on naming the instance of this module's own matrix values, in a
# module without a matrix.
module "shell" "m" {
  matrix = ["linux", "macos"]
  script = "true"
}

module "shell" "self" {
  depends_on = [module.m[matrix.target]]
  script     = "true"
}
