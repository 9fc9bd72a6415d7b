"""From tabletop to game day (issue 20): each scenario of a run exported as a runnable chaos
experiment (Chaos Toolkit, Chaos Mesh, LitmusChaos, AWS FIS), and Chaos Toolkit journals read
back as exercises and as cascade evidence. docs/gameday.md explains the loop."""
