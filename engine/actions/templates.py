"""The built-in action templates: a small set a new workspace can add in one command
(`runsheet action add NAME --template research_summary`). They read the record and the global context through
the default injected block (they name no field), so they work on any campaign, and run on the offline model
until an admin picks a real one."""

from __future__ import annotations

from typing import Any

TEMPLATES: dict[str, dict[str, Any]] = {
    "research_summary": {
        "kind": "ai",
        "category": "research",
        "description": (
            "Summarises what we know about the record's person and company in five bullet points: who they are, "
            "what the company does, likely priorities, recent signals, and open questions to check before outreach."
        ),
        "produces": "result",
        "options": {
            "prompt": (
                "Write a short research summary of this prospect for a sales rep, as five markdown bullet points: "
                "who they are, what their company does, their likely priorities, recent signals worth mentioning, "
                "and open questions to check before reaching out."
            ),
            "tier": "standard",
        },
    },
    "linkedin_opener": {
        "kind": "ai",
        "category": "personalization",
        "description": (
            "Drafts a two-sentence LinkedIn connection note for the record, grounded in their role and company and "
            "in our value proposition; no flattery, no links."
        ),
        "produces": "result",
        "options": {
            "prompt": (
                "Draft a LinkedIn connection note of at most two sentences to this person. Ground it in their role and "
                "company and in our value proposition. No flattery, no links, no emojis."
            ),
            "tier": "fast",
        },
    },
    "icp_score": {
        "kind": "ai",
        "category": "analysis",
        "description": (
            "Scores the record against our ideal customer profile from 1 (poor fit) to 10 (ideal), with the three "
            "reasons that weigh most."
        ),
        "produces": "result",
        "options": {
            "prompt": (
                "Score how well this prospect fits our ideal customer profile, from 1 (poor fit) to 10 (ideal), and "
                "give the three reasons that weigh most."
            ),
            "tier": "standard",
            "output_schema": {
                "type": "object",
                "properties": {
                    "score": {"type": "integer", "minimum": 1, "maximum": 10},
                    "reasons": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                },
                "required": ["score", "reasons"],
            },
        },
    },
    "meeting_prep": {
        "kind": "ai",
        "category": "enablement",
        "description": (
            "Prepares meeting notes for the account as a markdown document: the company at a glance, the person, "
            "talking points from our offer, likely objections with answers, and the next step to ask for. Kept in "
            "Documents."
        ),
        "produces": "document",
        "options": {
            "prompt": (
                "Prepare meeting notes for a first call with this prospect, as a markdown document with the sections: "
                "Company at a glance, The person, Talking points (from our offer), Likely objections and answers, "
                "Next step to ask for."
            ),
            "tier": "deep",
        },
    },
}
