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

# Ten axes of ten values: refused before any of its 10^10 combinations is
# made (it ran the machine out of memory).
module "shell" "huge" {
  matrix {
    a = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    b = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    c = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    d = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    e = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    f = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    g = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    h = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    i = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    j = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
  }
}

# GitHub Actions' include is not an axis.
module "shell" "include" {
  matrix {
    os      = ["linux"]
    include = [{ os = "mac" }]
  }
}

# The element that is not a string is named and pointed at.
module "shell" "element" {
  matrix = ["linux", ["arm"]]
}
