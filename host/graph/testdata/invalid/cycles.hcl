module "shell" "a" {
  depends_on = [module.b]
}

module "shell" "b" {
  script = module.c.value
}

module "shell" "c" {
  run_if = module.a.status == "succeeded"
}

module "shell" "x" {
  depends_on = [module.y]
}

module "shell" "y" {
  depends_on = [module.x]
}

module "shell" "hub" {
  depends_on = [module.spoke1, module.spoke2]
}

module "shell" "spoke1" {
  depends_on = [module.hub]
}

module "shell" "spoke2" {
  script = module.hub.value
}

module "shell" "ok" {
  depends_on = [module.a]
}
