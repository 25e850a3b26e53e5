variable "count" {
  type    = number
  default = "many"
}

variable "required" {
  type = string
}

variable "bad_type" {
  type = lisst(string)
}

variable "count" {
  default = 1
}

module "shell" "a" {
  script = "${var.cuont} ${var.required}"
}
