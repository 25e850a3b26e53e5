locals {
  a = local.b
  b = local.c
  c = local.a
  self = local.self
}

locals {
  from_module = module.build.value
  ok          = "fine"
  a           = "duplicate"
  bad_call    = uppr("x")
}

module "shell" "build" {
  script = local.okk
}
