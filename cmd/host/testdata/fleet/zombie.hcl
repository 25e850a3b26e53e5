# "work" runs on one of the workers offering z; the test freezes that
# worker's host process (not its plugin) past heartbeat_timeout, so the
# master re-runs it on the other. The first attempt ends while its host
# is frozen (once ${var.dir}/go exists), and its result is thrown away.

variable "dir" {
  type = string
}

pipeline {
  name = "fleet-zombie"
}

distributed {
  heartbeat_interval = "200ms"
  heartbeat_timeout  = "2s"
  capability_timeout = "1m"
}

module "shell" "work" {
  requires = ["z"]
  script   = "if [ -e ${var.dir}/started ]; then echo rerun; else echo ${run.instance} > ${var.dir}/started.tmp; mv ${var.dir}/started.tmp ${var.dir}/started; while [ ! -e ${var.dir}/go ]; do sleep 0.05; done; touch ${var.dir}/finished; echo first; fi"

  retry {
    attempts = 2
  }
}
