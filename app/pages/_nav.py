"""Sub-navigation shared by the lesion screens (not a page: the leading _ hides it)."""

import dash_bootstrap_components as dbc


def lesion_tabs(lesion_id: str, active: str) -> dbc.Nav:
    """Comparison / DVH / Dose links of one lesion."""
    items = [("comparison", "Comparison", f"/lesion/{lesion_id}"),
             ("dvh", "DVH", f"/dvh/{lesion_id}"),
             ("dose", "Dose view", f"/dose/{lesion_id}")]
    return dbc.Nav([dbc.NavItem(dbc.NavLink(text, href=href, active=key == active,
                                            id=f"tab-{key}"))
                    for key, text, href in items], pills=True, className="mb-2")
