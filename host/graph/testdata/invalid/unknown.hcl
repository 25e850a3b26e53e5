module "shell" "build" {
  depends_on = [module.checkuot]
}

module "shell" "test" {
  script = "${module.biuld.value} ${module.deploy.value}"
}

module "shell" "loop" {
  depends_on = [module.loop]
}

module "shell" "checkout" {}
