# solo must run with nothing else running, though six other modules are
# ready at the same time and the parallelism would let them all run.
pipeline {
  name = "alone"
}

module "testkit.sleep" "a" {
  duration = "250ms"
}

module "testkit.sleep" "b" {
  duration = "250ms"
}

module "testkit.sleep" "c" {
  duration = "250ms"
}

module "testkit.sleep" "solo" {
  duration        = "250ms"
  not_in_parallel = true
}

module "testkit.sleep" "d" {
  duration = "250ms"
}

module "testkit.sleep" "e" {
  duration = "250ms"
}

module "testkit.sleep" "f" {
  duration = "250ms"
}
