# Two modules that would run for a minute, and one waiting for them: the
# test interrupts the run once both have started.
pipeline {
  name = "signal"
}

module "testkit.sleep" "long" {
  duration = "60s"
}

module "shell" "child" {
  script = "sleep 61 & echo \"child pid $!\"; wait"
}

module "testkit.sleep" "after" {
  duration   = "0s"
  depends_on = [module.long, module.child]
}
