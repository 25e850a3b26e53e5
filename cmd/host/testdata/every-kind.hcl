# One error of each stage: the file's own (a meta-argument's value), the
# graph's (a cycle) and the plugins' (an unknown attribute, a wrong type,
# a plugin that cannot be found). validate reports them all at once.
module "shell" "a" {
  command    = ["true"]
  dependz_on = [module.b]
}

module "shell" "b" {
  comand = ["true"]
}

module "shell" "c" {
  command    = ["true"]
  depends_on = [module.d]
}

module "shell" "d" {
  command    = ["true"]
  depends_on = [module.c]
}

module "shell" "e" {
  command = ["true"]
  timeout = "5 minutes"
}

module "shell" "f" {
  command = "true"
}

module "nosuch" "g" {}
