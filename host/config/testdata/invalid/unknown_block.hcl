pipline {
  name = "x"
}

module "shell" "a" {}
