# Each unknown instance is blamed on its own index, not on the first
# reference to the matrix module.
module "shell" "build" {
  matrix  = ["linux", "arm"]
  command = ["echo", matrix.target]
}

module "shell" "body" {
  env = { A = module.build["linux"].status }
  command = ["echo",
  module.build["windwos"].status]
}

module "shell" "after_depends_on" {
  depends_on = [module.build["linux"]]
  command    = ["echo", module.build["darwin"].status]
}

module "shell" "two_wrong" {
  env     = { A = module.build["x86"].status }
  command = ["echo", module.build["mips"].status]
}

module "shell" "by_matrix_value" {
  matrix  = ["linux", "windows"]
  env     = { A = module.build["arm"].status }
  command = ["echo", module.build[matrix.target].status]
}
