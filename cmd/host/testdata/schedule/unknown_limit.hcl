pipeline {
  name = "unknown_limit"
}

limit "heavy" {
  max = 2
}

module "testkit.sleep" "a" {
  duration = "10ms"
  limits   = ["haevy"]
}
