pipeline {
  name = "static"
}

variable "greeting" {
  default = "hello"
}

# Refers to nothing that changes during the run: evaluated once, when the
# run is prepared.
module "shell" "constant" {
  command = ["echo", "${var.greeting} from ${run.os}"]
}

module "shell" "writer" {
  script = "printf new > state.txt"
}

# file() reads the world when it is called: it must see what writer wrote,
# not what the file held when the run was validated.
module "shell" "reader" {
  command    = ["echo", file("state.txt")]
  depends_on = [module.writer]
}
