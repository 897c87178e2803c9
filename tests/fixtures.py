"""A tiny corpus shared by the retrieval and evaluation tests (identifiers, camelCase, dotted names)."""

CORPUS = {
    "hr": {"title": "HR case", "text": "An employee asks the people team about parental leave"},
    "inc": {"title": "Incident", "text": "The email server is down and nobody can send mail"},
    "cost": {"title": "", "text": "Set u_cost_center on the sys_user record from the department"},
    "mgr": {"title": "Manager lookup", "text": "Read sys_user.manager to find who approves the request"},
    "asg": {"title": "Assignment", "text": "Set assignedTo when the ticket is routed to a group"},
}
