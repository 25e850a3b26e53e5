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

# "bb" is one letter from "b": a typo for it in another module, but never
# suggested to "b" itself, as depending on itself would be a cycle.
module "shell" "b" {
  depends_on = [module.bb]
}

module "shell" "c" {
  depends_on = [module.bb]
}
