-- Whether idgate created this person's user in The Things Stack (console
-- sign-in): only then may it sign them in there as that user.
ALTER TABLE users ADD COLUMN in_stack BIGINT NOT NULL DEFAULT 0;
