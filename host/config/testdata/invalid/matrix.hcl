module "shell" "empty" {
  matrix = []
}

module "shell" "dupes" {
  matrix = ["linux", "linux", "with space"]
}

module "shell" "both" {
  matrix = ["linux"]
  matrix {
    target = ["linux"]
  }
}

module "shell" "noaxes" {
  matrix {
  }
}

module "shell" "badexclude" {
  matrix {
    target  = ["linux", "windows"]
    go      = ["1.25"]
    exclude = [{ targte = "windows" }]
  }
}

module "shell" "badvalue" {
  matrix {
    target  = ["linux", "windows"]
    exclude = [{ target = "widnows" }]
  }
}

module "shell" "allgone" {
  matrix {
    target  = ["linux"]
    exclude = [{ target = "linux" }]
  }
}

module "shell" "axis" {
  matrix = ["linux"]
  script = matrix.goo
}
