//! Kernia's route table, as far as cutover cares: the one place that knows
//! which of Kernia's routes intercept works on and what each one needs.

use http::Method;

/// A route of Kernia's that intercept handles, relative to its base path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRoute {
    /// `POST /sign-in/email`
    SignInEmail,
    /// `POST /sign-in/username`
    SignInUsername,
    /// `POST /sign-in/phone-number`
    SignInPhone,
    /// `POST /sign-up/email`
    SignUpEmail,
    /// `POST /sign-up/username`
    SignUpUsername,
    /// `POST /reset-password`
    ResetPassword,
    /// `POST /phone-number/reset-password`
    PhoneResetPassword,
    /// `POST /phone-number/{send-otp,verify,request-password-reset}`: bodies
    /// Kernia reads in snake_case only.
    PhoneNumber,
    /// `POST /forget-password`
    ForgetPassword,
    /// `POST /request-password-reset`: the Better Auth client's name for
    /// `/forget-password`, which is all Kernia 0.1.0 has.
    RequestPasswordReset,
    /// `/callback/<provider>`, any method: a social sign-in completing.
    SocialCallback,
    /// `POST /sign-out`
    SignOut,
}

impl AuthRoute {
    /// The route for a request, given its path below Kernia's base path
    /// (normalized, e.g. `/sign-in/email`).
    pub fn classify(method: &Method, rel: &str) -> Option<AuthRoute> {
        if rel
            .strip_prefix("/callback/")
            .is_some_and(|p| !p.is_empty() && !p.contains('/'))
        {
            return Some(AuthRoute::SocialCallback);
        }
        if method != Method::POST {
            return None;
        }
        Some(match rel {
            "/sign-in/email" => AuthRoute::SignInEmail,
            "/sign-in/username" => AuthRoute::SignInUsername,
            "/sign-in/phone-number" => AuthRoute::SignInPhone,
            "/sign-up/email" => AuthRoute::SignUpEmail,
            "/sign-up/username" => AuthRoute::SignUpUsername,
            "/reset-password" => AuthRoute::ResetPassword,
            "/phone-number/reset-password" => AuthRoute::PhoneResetPassword,
            "/phone-number/send-otp"
            | "/phone-number/verify"
            | "/phone-number/request-password-reset" => AuthRoute::PhoneNumber,
            "/forget-password" => AuthRoute::ForgetPassword,
            "/request-password-reset" => AuthRoute::RequestPasswordReset,
            "/sign-out" => AuthRoute::SignOut,
            _ => return None,
        })
    }

    /// Whether intercept reads the JSON body (the others stream through).
    pub fn reads_body(self) -> bool {
        !matches!(self, AuthRoute::SocialCallback | AuthRoute::SignOut)
    }

    /// Whether this is a password sign-in (lazy migration runs).
    pub fn is_sign_in(self) -> bool {
        matches!(
            self,
            AuthRoute::SignInEmail | AuthRoute::SignInUsername | AuthRoute::SignInPhone
        )
    }

    /// The path below the base path Kernia must be sent, when it differs.
    pub fn kernia_path(self) -> Option<&'static str> {
        match self {
            AuthRoute::RequestPasswordReset => Some("/forget-password"),
            _ => None,
        }
    }

    /// One word for the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthRoute::SignInEmail => "sign_in_email",
            AuthRoute::SignInUsername => "sign_in_username",
            AuthRoute::SignInPhone => "sign_in_phone",
            AuthRoute::SignUpEmail => "sign_up_email",
            AuthRoute::SignUpUsername => "sign_up_username",
            AuthRoute::ResetPassword => "reset_password",
            AuthRoute::PhoneResetPassword => "phone_reset_password",
            AuthRoute::PhoneNumber => "phone_number",
            AuthRoute::ForgetPassword => "forget_password",
            AuthRoute::RequestPasswordReset => "request_password_reset",
            AuthRoute::SocialCallback => "social_callback",
            AuthRoute::SignOut => "sign_out",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified_by_method_and_path() {
        let post = Method::POST;
        assert_eq!(
            AuthRoute::classify(&post, "/sign-in/email"),
            Some(AuthRoute::SignInEmail)
        );
        assert_eq!(AuthRoute::classify(&Method::GET, "/sign-in/email"), None);
        assert_eq!(
            AuthRoute::classify(&Method::GET, "/callback/google"),
            Some(AuthRoute::SocialCallback)
        );
        assert_eq!(AuthRoute::classify(&Method::GET, "/callback/"), None);
        assert_eq!(AuthRoute::classify(&post, "/get-session"), None);
        assert_eq!(
            AuthRoute::classify(&post, "/request-password-reset").and_then(AuthRoute::kernia_path),
            Some("/forget-password")
        );
        assert!(!AuthRoute::SignOut.reads_body());
        assert!(AuthRoute::SignInPhone.is_sign_in());
    }
}
