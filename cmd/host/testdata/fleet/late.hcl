# "early" runs anywhere; "late" needs the capability "late", which only a
# worker started after the run began offers, so it waits for that worker
# (capability_timeout is long); a master alone runs it when started with
# --capability late. tag marks which run a result belongs to.

variable "tag" {
  type    = string
  default = "a"
}

pipeline {
  name = "fleet-late"
}

distributed {
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "5s"
  capability_timeout = "2m"
}

module "shell" "early" {
  matrix {
    n = ["1", "2", "3", "4"]
  }
  command = ["sh", "-c", "sleep 0.3; echo early ${matrix.n} of run ${var.tag}"]
}

module "shell" "late" {
  requires = ["late"]
  command  = ["echo", "late of run ${var.tag} after ${length(module.early)} early"]
}
