package graph

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// title is the graph's name: the pipeline's name, or its file name.
func (g *Graph) title() string {
	if g.pipeline.Name != "" {
		return g.pipeline.Name
	}
	return g.pipeline.Filename
}

// label is what a node shows: its address and its module kind, plus the
// meta-arguments that change how it is scheduled.
func label(n *Node) []string {
	lines := []string{n.Address, n.Module.KindLabel()}
	if len(n.Requires) > 0 {
		lines = append(lines, "requires: "+strings.Join(n.Requires, ", "))
	}
	if n.Module.Category != "" {
		lines = append(lines, "category: "+n.Module.Category)
	}
	return lines
}

// WriteDOT writes the graph in Graphviz DOT: one node per address, edges
// from a dependency to its dependent (the order things run in). The
// output is deterministic.
func (g *Graph) WriteDOT(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "digraph %s {\n", strconv.Quote(g.title()))
	fmt.Fprintf(bw, "  rankdir = \"LR\";\n")
	fmt.Fprintf(bw, "  node [shape = \"box\"];\n")
	for _, n := range g.nodes {
		fmt.Fprintf(bw, "  %s [label = %s];\n", strconv.Quote(n.Address), strconv.Quote(strings.Join(label(n), "\n")))
	}
	for _, n := range g.nodes {
		for _, d := range n.Deps {
			for _, a := range d.Addresses {
				fmt.Fprintf(bw, "  %s -> %s;\n", strconv.Quote(a), strconv.Quote(n.Address))
			}
		}
	}
	fmt.Fprintf(bw, "}\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write DOT graph: %w", err)
	}
	return nil
}

// WriteMermaid writes the graph as a Mermaid flowchart, for Markdown
// renderers such as GitHub's. Node ids are positional (n0, n1, ...)
// because addresses contain characters Mermaid ids cannot.
func (g *Graph) WriteMermaid(w io.Writer) error {
	bw := bufio.NewWriter(w)
	// The front matter is YAML, where Mermaid's #quot; codes are not
	// decoded: a JSON string is a YAML double-quoted scalar.
	title := g.title()
	if strings.ContainsAny(title, ":#\"'{}[],&*!|>%@`\\\n") || strings.TrimSpace(title) != title {
		q, _ := json.Marshal(title)
		title = string(q)
	}
	fmt.Fprintf(bw, "---\ntitle: %s\n---\n", title)
	fmt.Fprintf(bw, "flowchart LR\n")
	for _, n := range g.nodes {
		parts := label(n)
		for i := range parts {
			parts[i] = mermaidText(parts[i])
		}
		fmt.Fprintf(bw, "  n%d[\"%s\"]\n", n.Index, strings.Join(parts, "<br/>"))
	}
	for _, n := range g.nodes {
		for _, d := range n.Deps {
			for _, a := range d.Addresses {
				fmt.Fprintf(bw, "  n%d --> n%d\n", g.byAddr[a].Index, n.Index)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write Mermaid graph: %w", err)
	}
	return nil
}

// mermaidText escapes text for a quoted Mermaid label, using Mermaid's
// entity codes for the characters that would end or break it.
func mermaidText(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "\n", " ")
	return r.Replace(s)
}
