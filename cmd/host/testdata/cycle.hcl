module "shell" "a" {
  command    = ["true"]
  depends_on = [module.c]
}

module "shell" "b" {
  command    = ["true"]
  depends_on = [module.a]
}

module "shell" "c" {
  command = ["echo", module.b.value.stdout]
}
