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

# The same in each instance of a matrix: whether a body calls a function
# is decided once per module, for all its instances.
module "shell" "matrix_reader" {
  matrix {
    n = ["1", "2"]
  }
  command    = ["echo", "${file("state.txt")} ${matrix.n}"]
  depends_on = [module.writer]
}
