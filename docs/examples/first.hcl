# docs/getting-started.md walks through this file.
pipeline {
  name = "first"
}

variable "who" {
  type    = string
  default = "world"
}

module "hello" "greet" {
  name = var.who
}

module "shell" "facts" {
  script      = "echo \"{\\\"kernel\\\": \\\"$(uname -s)\\\"}\""
  stdout_json = true
}

module "shell" "announce" {
  command = ["echo", "${module.greet.value.message} from ${module.facts.value.json.kernel}"]
}
