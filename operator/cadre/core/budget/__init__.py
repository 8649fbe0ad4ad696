"""ResourceBudgets: which team a namespace belongs to (`teams`) and a budget's status
from its inputs (`status`)."""
