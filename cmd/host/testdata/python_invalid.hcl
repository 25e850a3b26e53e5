# Configs the Python plugin refuses in Validate, before anything runs.
module "template" "greeting" {
  values   = { name = "world" }
  template = "hello $who"
}

module "template.checksum" "sums" {
  patterns  = ["*.txt"]
  algorithm = "sha3"
}
