# Six modules in the group "heavy" (max 2) and three in "io" (max 1);
# io2 is in both. Nothing else constrains them.
pipeline {
  name = "limits"
}

limit "heavy" {
  max = 2
}

limit "io" {
  max = 1
}

module "testkit.sleep" "heavy1" {
  duration = "250ms"
  limits   = ["heavy"]
}

module "testkit.sleep" "heavy2" {
  duration = "250ms"
  limits   = ["heavy"]
}

module "testkit.sleep" "heavy3" {
  duration = "250ms"
  limits   = ["heavy"]
}

module "testkit.sleep" "heavy4" {
  duration = "250ms"
  limits   = ["heavy"]
}

module "testkit.sleep" "heavy5" {
  duration = "250ms"
  limits   = ["heavy"]
}

module "testkit.sleep" "heavy6" {
  duration = "250ms"
  limits   = ["heavy"]
}

module "testkit.sleep" "io1" {
  duration = "250ms"
  limits   = ["io"]
}

module "testkit.sleep" "io2" {
  duration = "250ms"
  limits   = ["io", "heavy"]
}

module "testkit.sleep" "io3" {
  duration = "250ms"
  limits   = ["io"]
}
