pipeline {
  name = "graph-fixture"
}

module "shell" "checkout" {
  category = "setup"
  command  = ["git", "rev-parse", "HEAD"]
}

module "shell" "lint" {
  category   = "check"
  depends_on = [module.checkout]
}

module "go.build" "build" {
  dir      = module.checkout.value.dir
  requires = ["docker"]
}

module "go.test" "test" {
  matrix   = ["linux", "windows"]
  requires = ["Linux", "go"]
  dir      = module.build.value.dir
  category = "check"
}

module "go.test" "cross" {
  matrix {
    target  = ["linux", "macos"]
    go      = ["1.25", "1.26"]
    exclude = [{ target = "macos", go = "1.25" }]
  }
  run_if = module.test["linux"].status == "succeeded"
}

module "shell" "package" {
  depends_on = [module.cross, module.lint]
  script     = "tar czf out.tgz ${module.build.value.dir}"
}

module "shell" "publish" {
  script = "upload ${module.package.value.stdout}"
}

module "shell" "notify" {
  always_run = true
}
