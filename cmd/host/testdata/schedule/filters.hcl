# checkout -> build -> test -> package, with lint and docs on the side.
pipeline {
  name = "filters"
}

module "testkit.sleep" "checkout" {
  duration = "0s"
}

module "testkit.sleep" "build" {
  duration   = "0s"
  depends_on = [module.checkout]
  category   = "compile"
}

module "testkit.sleep" "test" {
  duration   = "0s"
  depends_on = [module.build]
  category   = "check"
}

module "testkit.sleep" "package" {
  duration   = "0s"
  depends_on = [module.test]
}

module "testkit.sleep" "lint" {
  duration   = "0s"
  depends_on = [module.checkout]
  category   = "check"
}

module "testkit.sleep" "docs" {
  duration = "0s"
  category = "docs"
}
