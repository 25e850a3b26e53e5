# An instance key on a module without a matrix, in depends_on and in an
# expression: reported once each.
module "shell" "a" {
  script = "echo a"
}

module "shell" "by_key" {
  depends_on = [module.a["x"]]
  script     = "true"
}

module "shell" "in_expr" {
  command = ["echo", module.a["x"].status]
}
