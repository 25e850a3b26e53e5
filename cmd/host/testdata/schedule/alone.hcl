# solo must run with nothing else running, though six other modules are
# ready at the same time and the parallelism would let them all run.
pipeline {
  name = "alone"
}

module "testkit.sleep" "a" {
  duration = "150ms"
}

module "testkit.sleep" "b" {
  duration = "150ms"
}

module "testkit.sleep" "c" {
  duration = "150ms"
}

module "testkit.sleep" "solo" {
  duration        = "150ms"
  not_in_parallel = true
}

module "testkit.sleep" "d" {
  duration = "150ms"
}

module "testkit.sleep" "e" {
  duration = "150ms"
}

module "testkit.sleep" "f" {
  duration = "150ms"
}
