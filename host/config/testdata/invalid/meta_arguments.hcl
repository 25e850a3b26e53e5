module "shell" "a" {
  timeout         = "ten minutes"
  always_run      = "yes please"
  ignore_failure  = 3
  pin_to_master   = []
  priority        = 1.5
  category        = "has space"
  requires        = "docker"
  not_in_parallel = 42
  depends_on      = ["b", "module.b", module.b.value, var.x]
  retry {
    attempts = 0
    backoff  = "soon"
    tries    = 2
  }
  retry {
    attempts = 2
  }
}

module "shell" "b" {
  timeout = module.a.value.timeout
  retry {
    backoff = "-1s"
  }
}

# Well formed, but longer than a duration can be.
module "shell" "forever" {
  timeout = "100000000h"
}
