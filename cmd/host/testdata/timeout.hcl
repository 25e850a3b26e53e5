variable "ignore" {
  type    = bool
  default = false
}

module "shell" "sleepy" {
  script         = "sleep 30"
  timeout        = "500ms"
  ignore_failure = var.ignore
}

module "shell" "next" {
  command    = ["true"]
  depends_on = [module.sleepy]
}
