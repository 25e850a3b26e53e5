# Under --parallelism 1 the start order is fully determined: priority
# first (higher first), then the longest chain of dependents below a
# module (critical path), then file order.
pipeline {
  name = "order"
}

# Critical path 1 (g depends on it).
module "testkit.sleep" "a" {
  duration = "0s"
}

# Critical path 2 (b_child, then b_grand).
module "testkit.sleep" "b" {
  duration = "0s"
}

# Highest priority among the modules ready at the start.
module "testkit.sleep" "c" {
  duration = "0s"
  priority = 10
}

# Critical path 1 (d_child), after a in file order.
module "testkit.sleep" "d" {
  duration = "0s"
}

# Negative priority: after everything else.
module "testkit.sleep" "e" {
  duration = "0s"
  priority = -5
}

module "testkit.sleep" "f" {
  duration = "0s"
}

module "testkit.sleep" "b_child" {
  duration   = "0s"
  depends_on = [module.b]
}

module "testkit.sleep" "b_grand" {
  duration   = "0s"
  depends_on = [module.b_child]
}

module "testkit.sleep" "d_child" {
  duration   = "0s"
  depends_on = [module.d]
}

# Ready only when a is done, then ahead of everything by priority.
module "testkit.sleep" "g" {
  duration   = "0s"
  depends_on = [module.a]
  priority   = 20
}
